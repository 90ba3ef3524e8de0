from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "litserve.ipc._shm",
            sources=["csrc/_shm.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)

import re

from setuptools import find_packages, setup


def version():
    """The one home of the version: ngl_mmseg/__init__.py."""
    with open('ngl_mmseg/__init__.py', encoding='utf-8') as f:
        return re.search(r"^__version__ = '([^']+)'", f.read(), re.M).group(1)


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


setup(
    name='ngl-mmseg',
    version=version(),
    description='Next Generation Loss (NGL) for MMSegmentation',
    long_description=readme(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(include=['ngl_mmseg', 'ngl_mmseg.*']),
    python_requires='>=3.8',
    # The pinned stack (torch, mmcv with ops) is installed by tools/setup_env.sh;
    # these are the ranges the package itself needs.
    install_requires=['torch>=2.0', 'mmengine>=0.10.0', 'mmsegmentation>=1.2.0',
                      'numpy', 'pillow', 'matplotlib'],
    extras_require={'triton': ['triton'], 'tests': ['pytest']},
    zip_safe=False,
)

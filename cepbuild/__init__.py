"""Building cep: the PEP 517 backend (`backend`, setuptools' with one addition) and the
optional compiled build (`compiled`: the hot modules compiled with mypyc when
CEP_COMPILE=1). Used by `pip install .` only; not part of the installed package."""

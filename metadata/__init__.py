"""Built-in vocabulary facts the package ships (as `detic_cli.metadata`, read with importlib.resources).

`vocabularies.json` indexes the four built-in vocabularies (LVIS v1, Objects365, OpenImages, COCO):
class count, classes file, and the name, URL, size and sha256 of each released embedding file.
The classes files hold the class names in classifier order. `make_metadata.py` makes them all from
the public files; see its docstring for the format.
"""

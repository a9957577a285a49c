"""Batch inference: big scenes in, georeferenced masks out (``satseg predict``, satseg_predict).

``predict.predict_scene`` streams one scene through the model (``engine``) in overlapping
tiles (``blend``), with a reader and a writer thread (``pipeline``, ``sink``), into COGs
(``cog``), a cleaned mask (``postprocess``), GeoJSON polygons (``vectorize``), a quicklook
and a STAC item (``outputs``). ``jobs`` and ``inbox`` are what the DAG and the CLI call.
Nothing heavy is imported here.
"""

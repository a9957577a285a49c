"""Annotation queue (active learning): the champion's least certain windows as labelling tasks.

After predictions, ``export`` scores every window of each predicted scene by the model's
uncertainty (``uncertainty``: mean binary entropy of ``prob.tif``, or the TTA variance COG
``uncertainty.tif`` where one exists), ranks them across the run and writes the top
``annotate.budget`` under ``SATSEG_HOME/annotate/<dataset>/``: an image crop (GeoTIFF keeping
the georeference, or PNG for plain scenes) and a LabelMe file pre-filled with the predicted
polygons in crop pixel coordinates, plus ``tasks.json`` (ranked). A corrected pair dropped
into ``inbox/<dataset>/`` is ingested like any other; the LabelMe file's ``satseg_task`` key
credits it to its source scene in the ingest provenance record (``source_scene``,
``annotation_task``). Everything is read in windows: memory does not grow with the scene.
"""

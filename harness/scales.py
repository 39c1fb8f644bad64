"""The scales a run is recorded at (results/<scale>/): smoke checks the pipeline end to end in
seconds, cpu is what decides claims on a 2-core machine, gpu the same recipes at the size one GPU
affords. Papers declare their recipes per scale; the results store and the report file runs by it."""

SCALES = ("smoke", "cpu", "gpu")

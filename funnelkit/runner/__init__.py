"""Commands and the report batch: the command line, the warm-kernel report runner, the data check and project folders."""

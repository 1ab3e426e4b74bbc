"""Mappers: named passes from an ``OpGraph`` to a ``LoweredProgram``."""

from mappers.pipeline import DEFAULT_PASSES, PASSES, MapperOptions, Pipeline, mapper_pass

__all__ = ["Pipeline", "MapperOptions", "mapper_pass", "PASSES", "DEFAULT_PASSES"]

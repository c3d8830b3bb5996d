"""Settings and the data contract: the root of the dependency graph, importing nothing of ours."""

from filedrop_etl.config.errors import ConfigError, EtlError
from filedrop_etl.config.settings import Settings, WriteMode, load_settings

__all__ = ["ConfigError", "EtlError", "Settings", "WriteMode", "load_settings"]

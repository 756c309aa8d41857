"""engagement.yaml: schema, loading with line-accurate errors, CEL compilation."""

from .loader import ConfigInvalid, load_config_file, parse_config_text, validate_config_data
from .schema import EngagementConfig

__all__ = ["ConfigInvalid", "EngagementConfig", "load_config_file", "parse_config_text", "validate_config_data"]

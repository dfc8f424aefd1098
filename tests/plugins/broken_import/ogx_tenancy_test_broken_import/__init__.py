"""A plugin whose import fails, as a plugin with a missing dependency would."""

raise ImportError("ogx_tenancy_test_broken_import needs a library that is not installed (on purpose)")

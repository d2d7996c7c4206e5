"""sciclip_utils."""

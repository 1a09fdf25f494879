"""Figures drawn with matplotlib from arrays or fitted models; nothing here fits anything."""

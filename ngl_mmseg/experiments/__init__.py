"""Experiment machinery (the trainability study); the plugin never imports it."""

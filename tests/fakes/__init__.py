"""Fakes of outside services that tests and benches talk to over real network protocols."""

"""Result files by content hash: written by the engine's process, served and expired by the HTTP one."""

"""The results archive: attack results of the zoo's models, computed once and kept with a manifest.

``python -m tdlib archive {list,run,pack,build,verify}``; see :mod:`tdlib.archive.store` for the
format.
"""

from tdlib.archive.store import Archive, ArchiveError, archive_dir, list_archives, read_archive

__all__ = ["Archive", "ArchiveError", "archive_dir", "list_archives", "read_archive"]

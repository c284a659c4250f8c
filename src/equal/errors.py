"""Exceptions raised by equal.

The whole hierarchy::

    EqualError                 base of everything equal raises on purpose
    ├── ConfigError            the user's configuration is invalid
    ├── InputError             a corpus or reference file cannot be used as given
    ├── BackendError           an LLM or embedding backend failed
    │   ├── RateLimited        the server answered 429 after every retry
    │   └── ServerUnavailable  the server kept failing (5xx, timeouts, refused)
    ├── StorageError           a file equal keeps cannot be written or read back
    │   ├── DiskFull           the disk filled up; the message names the directory
    │   └── CacheDamaged       a cache file is damaged; the message names it and what to do
    └── RunLocked              another process is running in the same run directory

Every message says what to do about it. A spent budget is no error: the run
stops extracting, writes what it has and finishes.
"""

from __future__ import annotations


class EqualError(Exception):
    """Base class of every error equal raises on purpose."""


class ConfigError(EqualError):
    """The configuration is invalid (unknown key, bad value, inconsistent settings)."""


class InputError(EqualError):
    """A corpus or reference file is missing, unreadable or unusable."""


class BackendError(EqualError):
    """An LLM or embedding backend failed in a way retries did not fix."""


class RateLimited(BackendError):
    """The server kept answering 429 Too Many Requests."""


class ServerUnavailable(BackendError):
    """The server kept failing: 5xx answers, timeouts or refused connections."""


class StorageError(EqualError):
    """A file equal keeps (cache, run directory) cannot be written or read back."""


class DiskFull(StorageError):
    """No space left on the device holding a run directory or cache."""


class CacheDamaged(StorageError):
    """A cache file is damaged (truncated, zeroed, not a valid database)."""


class RunLocked(EqualError):
    """Another equal process holds the run directory."""

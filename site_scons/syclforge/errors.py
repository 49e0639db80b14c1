"""User-facing errors: the message is the whole story, no traceback needed."""


class SyclforgeError(Exception):
    """An error the user can fix; str(e) says what is wrong and what to do."""


class ConfigError(SyclforgeError):
    """A problem in a configuration file, located by file, line and key."""

    def __init__(self, path, line, key, message):
        self.path, self.line, self.key, self.message = str(path), line, key, message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")

from enum import StrEnum

class CanonicalEventType(StrEnum):
    COMMAND = "command"
    MESSAGE = "message"
    OTHER = "other"
    RECORD_CHANGE = "record_change"
    STATUS = "status"

    def __str__(self) -> str:
        return str(self.value)

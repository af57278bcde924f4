from enum import StrEnum

class OnNewMessageName(StrEnum):
    INTERRUPT = "interrupt"
    WAIT = "wait"

    def __str__(self) -> str:
        return str(self.value)

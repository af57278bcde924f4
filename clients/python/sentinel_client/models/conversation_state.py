from enum import StrEnum

class ConversationState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    WAITING = "waiting"

    def __str__(self) -> str:
        return str(self.value)

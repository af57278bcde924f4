from enum import StrEnum

class ReplyPolicy(StrEnum):
    ANY = "any"
    DETERMINISTIC = "deterministic"
    EXTRACTED = "extracted"
    NEVER = "never"

    def __str__(self) -> str:
        return str(self.value)

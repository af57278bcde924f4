from enum import StrEnum

class AgentModeName(StrEnum):
    BUILTIN = "builtin"
    EXTERNAL = "external"
    FORWARD = "forward"
    NONE = "none"

    def __str__(self) -> str:
        return str(self.value)

from enum import StrEnum

class HealedBy(StrEnum):
    ADAPTER = "adapter"
    EXTRACTOR = "extractor"
    LLM = "llm"
    REPAIR = "repair"

    def __str__(self) -> str:
        return str(self.value)

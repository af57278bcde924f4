from enum import StrEnum

class CanonicalPlatform(StrEnum):
    SALESFORCE = "salesforce"
    SLACK = "slack"
    STANDARD = "standard"
    TELEGRAM = "telegram"
    UNKNOWN = "unknown"
    WHATSAPP = "whatsapp"

    def __str__(self) -> str:
        return str(self.value)

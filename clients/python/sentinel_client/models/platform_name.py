from enum import StrEnum

class PlatformName(StrEnum):
    SALESFORCE = "salesforce"
    SLACK = "slack"
    STANDARD = "standard"
    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"

    def __str__(self) -> str:
        return str(self.value)

from enum import StrEnum

class JobEventType(StrEnum):
    JOB_CANCELED = "job.canceled"
    JOB_DEAD = "job.dead"
    JOB_PROGRESS = "job.progress"
    JOB_QUEUED = "job.queued"
    JOB_RETRYING = "job.retrying"
    JOB_RUNNING = "job.running"
    JOB_SUCCEEDED = "job.succeeded"
    TURN_ENDED = "turn.ended"
    TURN_STARTED = "turn.started"

    def __str__(self) -> str:
        return str(self.value)

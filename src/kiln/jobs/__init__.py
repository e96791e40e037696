"""Jobs: one record and state machine for every kind, executors (local, Ray), processing
jobs and functions."""

from kiln.jobs._base import Capabilities, Executor, Launch, open_executor, register_executor
from kiln.jobs._models import JOB_KINDS, JOB_STATES, Job, JobLogs
from kiln.jobs._service import JobService

__all__ = [
    "Capabilities",
    "Executor",
    "JOB_KINDS",
    "JOB_STATES",
    "Job",
    "JobLogs",
    "JobService",
    "Launch",
    "open_executor",
    "register_executor",
]

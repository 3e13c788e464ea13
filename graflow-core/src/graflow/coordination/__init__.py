"""Coordination: how a parallel group's members run."""

from graflow.coordination.base import (
    CoordinationBackend,
    GroupCoordinator,
    MemberOutcome,
    MemberRun,
    MemberRunner,
)

__all__ = ["CoordinationBackend", "GroupCoordinator", "MemberOutcome", "MemberRun", "MemberRunner"]

"""Review service: moderation queue, verdicts, escalations, strategy-change approvals, audit log."""

"""The commands, one use case each, between the command line and the stages: `run.py` (a sweep file to
summary.json; `rerun.py` answers first when the same sweep already finished), `plan.py` (the DAG and what is
cached), `record.py` (`report`, `compare`, `status`, `cache`: they only read the record). Each takes its request
(`requests.py`: plain data) and an `Output`, and returns the exit code. The tracking URI is resolved in one place
(`tracking.py`). orchestrator/cli.py parses arguments into requests and calls these."""

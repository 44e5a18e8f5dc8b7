"""The berth benchmark driver: berth beside registry:2 and the machine's limits (run it with bench/run.sh)."""

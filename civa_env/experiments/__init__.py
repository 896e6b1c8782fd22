"""The experiment layer: the step loop and run folders, sweeps, results, breakdowns, reports
and plots. Everything here reads and writes run folders through ``runfolder``."""

"""Each launcher's settings: the job schema's ``launcher`` section, which job.json carries to every rank (a SLURM
task reads its stop signal there). The launchers themselves are driver-side: driver/launchers/."""

"""Training: flow matching for the DiT (Alg. 1, eq. 8), the Mel-VAE (Alg. 2), Mono2Stereo and vocoders.

Modules: schedules (InverseLR, Alg. 2 weights), ema, checkpoint (resume + export), features (shards),
extract (`python -m kf_core extract`), data (masked batches, resumable order), clips (audio crops),
flow, vae, gan, stereo, vocoder, distributed (DDP/FSDP), metrics, runner, cli (`python -m kf_core train`).
Nothing is imported here so `import kf_core.train` stays cheap.
"""

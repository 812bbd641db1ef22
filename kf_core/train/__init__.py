"""Training: flow matching for the DiT (Alg. 1, eq. 8), the Mel-VAE (Alg. 2), Mono2Stereo and vocoders.

Modules: schedules (InverseLR, Alg. 2 weights), ema, checkpoint (resume + export, whole or sharded),
features (shards), sources (dataset descriptions, long-source windows), extract (`python -m kf_core
extract`: workers, manifest, cursor), data (masked batches, resumable and length-bucketed orders),
clips (audio crops), flow, vae, gan, stereo, vocoder, distributed (DDP/FSDP2), metrics, runner,
cli (`python -m kf_core train`).
Nothing is imported here so `import kf_core.train` stays cheap.
"""

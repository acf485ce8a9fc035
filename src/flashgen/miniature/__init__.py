"""The miniature SD3.5 Medium trained on Shapes World (the `shapes-teacher` built-in).

components  architecture configs and builders (VAE, CLIP-L/G, MMDiT-X transformer)
data        the pre-rendered in-memory training set
losses      VAE, contrastive and rectified-flow losses (pure)
vae_task, clip_task, teacher_task   the three trainer stages
recipe      all stages in one resumable command; presets: gpu, cpu, cpu-smoke
export      the fp16 diffusers folder with flashgen.json
"""

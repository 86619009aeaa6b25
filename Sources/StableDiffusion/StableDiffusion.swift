// The StableDiffusion module (being written).

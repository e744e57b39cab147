// noise.cl

// conv.cl

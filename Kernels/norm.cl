// norm.cl

"""Douglas & Yu, "Why ReLU Units Sometimes Die" (2018): Pr[y > 0] per layer in plain and residual
CNNs, and the single-unit model whose convergence slows as Pr[y > 0] falls."""

"""NormAD (Anwani & Rajendran): precise spike-time learning, single layer and multilayer
(spatio-temporal error backpropagation), with ReSuMe as the classic baseline and
surrogate-gradient BPTT as the modern peer. Reads neuron -> normad (the rules) / resume /
surrogate -> tasks -> training -> experiments."""

"""NormAD (Anwani & Rajendran): precise spike-time learning, single layer and multilayer
(spatio-temporal error backpropagation), with ReSuMe as the classic baseline. Reads
neuron -> normad (the rules) / resume -> tasks -> training -> experiments."""

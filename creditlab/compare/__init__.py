"""``creditlab compare``: several learning rules on one shared task, one table.

* :mod:`~creditlab.compare.feedback`: backprop, feedback alignment and direct feedback
  alignment as modes of one network;
* :mod:`~creditlab.compare.locality`: what each rule's update uses, declared and checked;
* :mod:`~creditlab.compare.rules`: the rules by name, each with its adapter and locality;
* :mod:`~creditlab.compare.dendritic`, :mod:`~creditlab.compare.coagent`,
  :mod:`~creditlab.compare.spiking`: the adapters of the microcircuit, coagent networks (a
  contextual bandit) and HM2-BP (rate-coded inputs) over their methods' public objects;
* :mod:`~creditlab.compare.lenet`: BioTorch's LeNet with FA / DFA convolutions (the check
  against its published Fashion-MNIST errors);
* :mod:`~creditlab.compare.regression`: the teacher-student regression task;
* :mod:`~creditlab.compare.experiments`: the shared tasks (one experiment per data set);
* :mod:`~creditlab.compare.harness`: rules x seeds into one folder, resumable;
* :mod:`~creditlab.compare.table`: the table (terminal, Markdown, HTML fragment);
* :mod:`~creditlab.compare.figures`: learning curves and alignment over training.

compare sits above the method packages (it may import their public classes in its adapters;
no method imports it) and below the command line.
"""

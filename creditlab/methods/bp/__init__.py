"""Backpropagation with torch autograd: the baseline every learning rule is measured against."""

from lightact.models.layers.graph_attention import SparseGraphAttention, k_hop_neighbours
from lightact.models.layers.linear_attention import SegmentedLinearAttention, segment_lengths

__all__ = ["SparseGraphAttention", "SegmentedLinearAttention", "k_hop_neighbours", "segment_lengths"]

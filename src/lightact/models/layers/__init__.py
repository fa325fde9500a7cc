from lightact.models.layers.blocks import CrossAttentionBlock, SelfAttentionBlock
from lightact.models.layers.graph_attention import SparseGraphAttention, k_hop_neighbours
from lightact.models.layers.linear_attention import SegmentedLinearAttention, segment_lengths
from lightact.models.layers.mlp import FeedForward
from lightact.models.layers.pos_embed import sinusoidal_code
from lightact.models.layers.temporal_conv import PackedTemporalConv

__all__ = [
    "CrossAttentionBlock",
    "FeedForward",
    "PackedTemporalConv",
    "SegmentedLinearAttention",
    "SelfAttentionBlock",
    "SparseGraphAttention",
    "k_hop_neighbours",
    "segment_lengths",
    "sinusoidal_code",
]

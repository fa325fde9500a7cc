from lightact.models.layers.blocks import CrossAttentionBlock, SelfAttentionBlock
from lightact.models.layers.graph_attention import SparseGraphAttention, k_hop_neighbours
from lightact.models.layers.linear_attention import SegmentedLinearAttention
from lightact.models.layers.mlp import FeedForward
from lightact.models.layers.packing import Packing
from lightact.models.layers.pos_embed import sinusoidal_code
from lightact.models.layers.temporal_conv import PackedTemporalConv

__all__ = [
    "CrossAttentionBlock",
    "FeedForward",
    "PackedTemporalConv",
    "Packing",
    "SegmentedLinearAttention",
    "SelfAttentionBlock",
    "SparseGraphAttention",
    "k_hop_neighbours",
    "sinusoidal_code",
]

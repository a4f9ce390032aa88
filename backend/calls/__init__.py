"""Calls: ICE servers, the pair checks, and the signalling hub between browsers and tablets."""

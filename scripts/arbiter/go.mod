module pgha.local/arbiter

go 1.26

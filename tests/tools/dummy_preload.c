// A user's own LD_PRELOAD library: `parklock run` must keep it loaded.
__attribute__((visibility("default"))) int plk_tools_dummy_marker(void);

int plk_tools_dummy_marker(void)
{
    return 42;
}

/* Commands of the cymg tool that live in their own file. Each takes the
 * arguments after its name and returns the exit status (0 done, 1 failure,
 * 2 bad usage). */
#ifndef CYMG_TOOL_H
#define CYMG_TOOL_H

/* cymg mqtt pub|sub ... (tools/mqtt.c) */
int cymg_tool_mqtt(int argc, char **argv);

#endif

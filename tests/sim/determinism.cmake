# Runs one seed twice with --trace and fails unless both traces are byte-identical and
# non-trivial. Usage: cmake -DSIM=<raftmq-sim> -DSEED=<n> -P determinism.cmake
foreach(run a b)
  execute_process(COMMAND ${SIM} --seed ${SEED} --trace
                  OUTPUT_VARIABLE trace_${run} RESULT_VARIABLE rc_${run})
endforeach()
string(LENGTH "${trace_a}" length)
if(length LESS 10000)
  message(FATAL_ERROR "trace of seed ${SEED} is suspiciously short (${length} bytes)")
endif()
if(NOT trace_a STREQUAL trace_b)
  message(FATAL_ERROR "seed ${SEED}: two runs printed different traces")
endif()
if(NOT rc_a STREQUAL rc_b)
  message(FATAL_ERROR "seed ${SEED}: two runs exited differently (${rc_a} vs ${rc_b})")
endif()
string(SHA256 digest "${trace_a}")
message(STATUS "seed ${SEED}: identical traces, ${length} bytes, sha256 ${digest}")
